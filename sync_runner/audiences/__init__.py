"""Schema and audiences (macros/schema, macros/audiences): the declared schema as a graph, its checks, its
rendering, and audience previews computed in the warehouse by the package's macros.

May import: project, core.
"""
