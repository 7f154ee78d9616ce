"""The lifecycle database: SQLAlchemy 2.0 typed models, engine/session factory, repository functions."""
