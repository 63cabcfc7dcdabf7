"""Names the dead-code check (tests/test_code_quality.py, vulture) cannot see used: code reached by a string, a
protocol of another library or a framework. Add an entry here, with the reason, only for such a name; code that
nothing calls is deleted instead. Framework hooks with fixed names (``__getattr__``, ``model_post_init``,
``find_class``…) and decorator-registered functions are ignored by the check itself (see ``IGNORED_NAMES`` and
``IGNORED_DECORATORS`` there)."""

from mcp_server.server import StaticTokenVerifier

# The backend classes named by the metric registry's "module:Class" strings (quality/specs.py) are not listed
# here: tests/test_code_quality.py derives their entries from the registry.
USED_INDIRECTLY = [
    # the MCP SDK's TokenVerifier protocol: called by the SDK's bearer-auth middleware
    StaticTokenVerifier.verify_token,
]
