-- A login role that can read the conversations database and change nothing in it (the web app's
-- transcript view). psql variables: reader, reader_password, owner (the role Rasa writes as).
-- Run against the conversations database: deploy/postgres-init.sh and tests/test_deployment.py.
CREATE ROLE :"reader" LOGIN PASSWORD :'reader_password';
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
-- Rasa creates its events table on first start, after this runs.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
