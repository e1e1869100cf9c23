"""Rasa input channels of the assistant: SMS through Twilio (the website uses Rasa's socket.io)."""
