# Sourced by ./scripts/test: a virtualenv of its own for Synapse (`.venv-synapse`), the real
# homeserver the Matrix tests run against. Its dependencies never meet the project's. Made
# once (reinstalled when SYNAPSE_SPEC changes); a failure only skips the Matrix tests,
# saying why (outside CI, where they must run).
SYNAPSE_SPEC="matrix-synapse>=1.120"
SYNAPSE_VENV="$ROOT/.venv-synapse"
SYNAPSE_STAMP="$SYNAPSE_VENV/.subdesk-installed"
if [ ! -f "$SYNAPSE_STAMP" ] || [ "$(cat "$SYNAPSE_STAMP")" != "$SYNAPSE_SPEC" ]; then
  echo "Installing Synapse into .venv-synapse for the Matrix tests (first run only)…" >&2
  if "$PYTHON" -m venv "$SYNAPSE_VENV" \
    && "$SYNAPSE_VENV/bin/python" -m pip install --quiet "$SYNAPSE_SPEC" >&2; then
    echo "$SYNAPSE_SPEC" > "$SYNAPSE_STAMP"
  else
    echo "Synapse could not be installed: the Matrix tests will be skipped." >&2
    rm -rf "$SYNAPSE_VENV"
  fi
fi
