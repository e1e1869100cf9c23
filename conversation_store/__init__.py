"""Where Rasa keeps conversations: its SQL tracker store, with patient text kept out of error logs."""

from __future__ import annotations

from typing import Any

from rasa.core.tracker_store import SQLTrackerStore


class QuietSQLTrackerStore(SQLTrackerStore):
    """Rasa's SQL tracker store whose database errors never quote the statement's values.

    Rasa builds its engine without ``hide_parameters``, so an error while saving (a full disk,
    a lost connection) would log the row it tried to write: the patient's own words.
    endpoints.yml names this class as the tracker store's ``type``; its settings are Rasa's.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read by SQLAlchemy whenever it wraps a database error or logs a statement.
        self.engine.hide_parameters = True
