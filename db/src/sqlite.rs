//! SQLite implementation of the store (being written).
