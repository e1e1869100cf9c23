"""Clinic details shared by the assistant, the channels and the web app."""
