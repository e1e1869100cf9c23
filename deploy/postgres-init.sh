#!/usr/bin/env bash
# First start of the compose PostgreSQL: the conversations database beside the appointment
# requests, and a read-only role for the web app, which only reads conversations.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE hsg_conversations OWNER $POSTGRES_USER"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname hsg_conversations \
  -v reader=hsg_reader -v reader_password="$TRACKER_READER_PASSWORD" -v owner="$POSTGRES_USER" \
  -f /deploy/tracker-reader.sql
