"""Checks of specplan's exports by the real servers' own parsers (see tests/test_real_servers.py).

hub.py runs in the project's venv; check_*.py and verdict.py run inside the server venvs that
.ci/server_venvs.sh builds, so they use the standard library and the server only.
"""
