"""Staged rollouts, decided: which clusters move to a new revision now.

    policy  the values a decision is made from and the decision itself:
            the profile's rollout policy (maxUpdate, stages, gates, failure
            handling), what is known about each matched cluster, the outcome
    decide  `decide()`: who moves now, the rollout's phase, when to look again

Used by the profile reconciler's rollout step (`engine.controller.rollout_step`),
which converts a profile and its ClusterSummaries into these values and
writes the decision back into the API.

The package rule: purely computational. No I/O and no clock (`now` is an
argument), so the same inputs always give the same decision and a
reconcile may be repeated safely; and no `engine.model` types — the rollout
step converts the typed spec into plain policy values (a stage's
matchExpressions pass as `engine.labels` expressions), so the rules can be
tested and reasoned about on their own. Shared rules are used, not copied:
label selectors match as `engine.labels` says, IntOrPercent values count as
`engine.model.quantities` says. Import-linter's pure contract holds this
package to no I/O.
"""
