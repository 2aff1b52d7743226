"""ozon-inventory: keep an Ozon seller's stock in PostgreSQL, correct to the unit, every run."""
