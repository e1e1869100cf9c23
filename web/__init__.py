"""The clinic's web app: the public HSG page with the chat widget (see web.app.create_app)."""
