"""The message plan of a scheduled request, its worker and the Twilio sender."""
