#!/usr/bin/env bash
# Runs the action server and the Rasa server (and the web app, once it exists) in the
# foreground; Ctrl-C stops them all. `run.sh shell` chats in the terminal instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var && chmod 700 var

ACTION_SERVER_PORT="${ACTION_SERVER_PORT:-5055}"
RASA_PORT="${RASA_PORT:-5005}"
WEB_PORT="${WEB_PORT:-8000}"
# Rasa's CORS and its socket.io channel both accept browser pages from this origin only.
export WEB_ORIGIN="${WEB_ORIGIN:-http://localhost:${WEB_PORT}}"
MODEL="models/hsg-assistant.tar.gz"
# The page tells the visitor's browser where Rasa's socket.io channel is.
export RASA_PUBLIC_URL="${RASA_PUBLIC_URL:-http://localhost:${RASA_PORT}}"

trap 'trap - INT TERM EXIT; kill 0 2>/dev/null; wait' INT TERM EXIT

# Every server listens on loopback only: a clinic exposes the assistant through a proxy (compose).
# Rasa refuses bodies over 64 kB from patients (only Rasa: its calls to the action server carry
# the whole conversation, and action_server/ sets its own limit for them).
SANIC_REQUEST_MAX_SIZE="${SANIC_REQUEST_MAX_SIZE:-65536}"
.venv/bin/python -m action_server --host 127.0.0.1 --port "$ACTION_SERVER_PORT" &

if [ "${1:-}" = "shell" ]; then
  .venv/bin/rasa shell --model "$MODEL" --endpoints endpoints.yml
  exit 0
fi

# Rasa's HTTP API (tracker events: check-ins, staff takeover) shares the channels' port, so it
# always needs the token; the web app and the outreach worker read the same one (rasa_http/).
RASA_API_TOKEN="${RASA_API_TOKEN:-$(.venv/bin/python -c 'import rasa_http; print(rasa_http.api_token())')}"
export RASA_API_TOKEN
SANIC_REQUEST_MAX_SIZE="$SANIC_REQUEST_MAX_SIZE" \
  .venv/bin/rasa run --model "$MODEL" --interface 127.0.0.1 --port "$RASA_PORT" \
    --endpoints endpoints.yml --credentials credentials.yml --cors "$WEB_ORIGIN" \
    --enable-api --auth-token "$RASA_API_TOKEN" &

# The outreach worker sends the planned reminder texts (README, "Reminders and check-ins"); it
# listens on nothing, and without Twilio credentials it says so once and sends nothing.
export RASA_URL="${RASA_URL:-http://127.0.0.1:${RASA_PORT}}"
.venv/bin/python -m outreach.worker &

if [ -f web/app.py ]; then
  .venv/bin/python -m web.app --host 127.0.0.1 --port "$WEB_PORT" &
fi

echo "Rasa REST channel: http://localhost:${RASA_PORT}/webhooks/rest/webhook  (Ctrl-C stops everything)"
echo "Clinic page: ${WEB_ORIGIN}/   Staff area: ${WEB_ORIGIN}/staff   SMS webhook: http://localhost:${RASA_PORT}/webhooks/twilio/webhook"
wait -n
