"""The project's foundation: what every package of comfy-quality shares and nothing of ours is imported by.

- :mod:`comfy_quality.errors`: the root of every exception the project raises (:class:`ComfyQualityError`);
  :mod:`comfy_quality.boundary` the error tables of the entry points.
- :mod:`comfy_quality.config`: the settings base every section stands on, and the one list, bool and size parser;
  :mod:`comfy_quality.settings` composes the sections into the tree (it names their modules and imports them only
  when asked).
- :mod:`comfy_quality.lazy`: package exports loaded on first use.

Modules here import only the standard library and third-party packages, never ``quality``, ``refinement``,
``storage``, ``mcp_server``, ``dashboard``, ``serving`` or ``jobqueue``: every package may depend on them.
"""
