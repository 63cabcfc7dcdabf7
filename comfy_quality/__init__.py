"""The project's foundation: what every package of comfy-quality shares and nothing of ours is imported by.

- :mod:`comfy_quality.errors`: the root of every exception the project raises (:class:`ComfyQualityError`).

Modules here import only the standard library and third-party packages, never ``quality``, ``refinement``,
``storage``, ``mcp_server``, ``dashboard``, ``serving`` or ``jobqueue``: every package may depend on them.
"""
