"""Watching a running network: monitors and checks of what is bound (:mod:`.monitor`,
:mod:`.bindings`), and its figures: what participants count about themselves
(:mod:`.figures`, :mod:`.reporter`), what a coordinator gathers from them and from the broker
(:mod:`.collector`, :mod:`.depth`), and the picture of the graph made from both
(:mod:`.network`).  See docs/observing.md.

Participants import only :mod:`.figures` and :mod:`.reporter`; nothing here is imported by
them that needs a coordinator.
"""
