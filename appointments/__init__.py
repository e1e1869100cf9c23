"""Appointment requests and SMS opt-outs: the data layer shared by the actions and the web app."""
