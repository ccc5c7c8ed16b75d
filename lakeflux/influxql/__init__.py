"""InfluxQL: a parser for the query language of InfluxDB 1.x dashboards, and a planner that answers it
with the same engine, tables and read-only guarantees as SQL queries."""
