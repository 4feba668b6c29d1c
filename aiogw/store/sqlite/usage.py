"""`aiogw usage` on SQLite: tokens and cost per group, from the audit's list table."""

from __future__ import annotations

import sqlite3

from aiogw.audit import ids

GROUPS = {
    "user": "coalesce(user, '-')",
    "model": "coalesce(model, '-')",
    "route": "coalesce(route, '-')",
    "day": "strftime('%Y-%m-%d', started, 'unixepoch')",
}


def usage_rows(
    conn: sqlite3.Connection, by: str, user: str | None = None, since: float | None = None, until: float | None = None
) -> list[tuple]:
    """(group, requests, refused, input, cache read, cache write, output, cost, unpriced)
    per group; requests count every exchange, refused the ones the gateway turned away."""
    group = GROUPS[by]
    clauses, args = [], []
    if since is not None:
        clauses.append("id >= ?")
        args.append(ids.bound(since))
    if until is not None:
        clauses.append("id < ?")
        args.append(ids.bound(until))
    if user is not None:
        clauses.append("user = ?")
        args.append(user)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    sql = (
        f"SELECT {group} AS grp, count(*), sum(outcome = 'refused'), "
        "sum(input_tokens + cache_read_tokens + cache_write_tokens), "
        "sum(cache_read_tokens), sum(cache_write_tokens), sum(output_tokens), total(cost_usd), "
        f"sum(cost_usd IS NOT NULL AND priced = 0) FROM exchanges{where} GROUP BY grp ORDER BY grp"
    )
    return [tuple(row) for row in conn.execute(sql, args)]
