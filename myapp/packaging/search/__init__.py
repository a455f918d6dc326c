"""Full-text search over projects, on SQLite or PostgreSQL.

``index``: the database's own index, what a user typed turned into its query
language, and "did you mean". ``ranking``: which projects a search returns,
in what order (``search_projects``), and what it suggests when none match.
"""
