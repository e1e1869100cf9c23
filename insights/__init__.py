"""What the assistant could not answer: grouped by meaning, counted per week and channel, exported."""
