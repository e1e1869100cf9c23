"""One page of a longer query result, for the staff area's lists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    number: int
    size: int

    @property
    def page_count(self) -> int:
        """How many pages there are; at least one, so "page 1 of 1" reads right when empty."""
        return max(1, -(-self.total // self.size))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.page_count


def paginate(session: Session, statement: Select, number: int, size: int) -> Page:
    """Runs ``statement`` (which selects one entity, already ordered) for page ``number``.

    A page past the end gives the last page rather than an empty one: a filter may have shrunk
    the list since the link was made.
    """
    total = session.execute(
        select(func.count()).select_from(statement.order_by(None).subquery())
    ).scalar_one()
    number = min(max(1, number), max(1, -(-total // size)))
    items = session.execute(statement.limit(size).offset((number - 1) * size)).scalars().all()
    return Page(items=list(items), total=total, number=number, size=size)
