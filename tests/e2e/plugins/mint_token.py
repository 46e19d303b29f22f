"""An exec credential plugin for tests: mints a ServiceAccount token with the TokenRequest API.

Run by the controller and by helm through a kubeconfig's `users[].user.exec`
(command: the venv's python, args: this file). Configured through the exec
`env`:

  MINT_KUBECTL       kubectl to call
  MINT_ADMIN         the admin kubeconfig of the cluster the token is for
  MINT_SA            namespace/name of the ServiceAccount
  MINT_LOG           a file that gets one JSON line per call (who ran us, what we were told)
  MINT_EXPIRES       seconds until the expirationTimestamp we claim (the token itself
                     lives 10 minutes, the API server's minimum)
  MINT_MODE          mint (default) | fail | garbage | fail-under-helm | stale-first

`fail` exits 1 with a fake token on stderr; `garbage` prints something that is not
an ExecCredential; `fail-under-helm` fails only when helm is the caller;
`stale-first` answers its first call with a token the server refuses.
Standard library only, so a call costs a python start and one kubectl.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys

FAKE_SECRET = "sk-fake-7Qm2xR9vL4pT8wZ1nB6cY3hK5jD0aF2e"


def main() -> int:
    info = json.loads(os.environ.get("KUBERNETES_EXEC_INFO") or "{}")
    mode = os.environ.get("MINT_MODE", "mint")
    try:
        with open(f"/proc/{os.getppid()}/comm") as comm:
            caller = comm.read().strip()
    except OSError:
        caller = "?"
    log = os.environ.get("MINT_LOG")
    calls = 0
    if log:
        if os.path.exists(log):
            with open(log) as seen:
                calls = sum(1 for _ in seen)
        with open(log, "a") as out:
            out.write(json.dumps({"time": datetime.datetime.now(datetime.UTC).isoformat(),
                                  "caller": caller, "mode": mode,
                                  "apiVersion": info.get("apiVersion"),
                                  "server": (info.get("spec", {}).get("cluster") or {})
                                  .get("server")}) + "\n")
    if mode == "fail" or (mode == "fail-under-helm" and caller == "helm"):
        print(f"error: the identity service refused token {FAKE_SECRET} (expired session)",
              file=sys.stderr)
        return 1
    if mode == "garbage":
        print("Welcome! <html>this is not an ExecCredential</html>")
        return 0
    if mode == "stale-first" and calls == 0:
        token = "not-a-token-the-server-knows-0123456789abcdef"
    else:
        namespace, name = os.environ["MINT_SA"].split("/")
        proc = subprocess.run([os.environ["MINT_KUBECTL"], "--kubeconfig", os.environ["MINT_ADMIN"],
                               "create", "token", name, "-n", namespace, "--duration", "10m"],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"kubectl create token failed: {proc.stderr.strip()}", file=sys.stderr)
            return 1
        token = proc.stdout.strip()
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
        seconds=float(os.environ.get("MINT_EXPIRES", "15")))
    print(json.dumps({
        "apiVersion": info.get("apiVersion") or "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": token,
                   "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
