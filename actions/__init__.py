"""The assistant's action server: session start, answers, fallback and the appointment request."""
