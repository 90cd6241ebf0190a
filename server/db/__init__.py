"""Storage: SQLAlchemy 2 typed models, the async engine, the unit of work and repositories."""
