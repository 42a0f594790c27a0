"""The catalogue of known findings: what the systems under check are known to break, and how each is recognised.

``findings`` holds one ``Finding`` per known bug (its minimal run, the invariant it breaks, the
targets, releases and SDK profiles it holds for, its signature: the cause that explains a violation as
this finding's). The properties mark a known finding's property a strict expected failure from here,
and the search explains what it meets by it.

May import: ``model``, ``places``, ``releases``.
"""
