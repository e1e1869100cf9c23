"""Conversations that need a person: reasons, takeover, hand-back, staff messages."""
