-- Example tables for the compose stack (run once by the TimescaleDB image on an empty volume).
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE EXTENSION IF NOT EXISTS postgres_fdw;

CREATE TABLE conditions (
    time timestamptz NOT NULL,
    device text NOT NULL,
    temperature double precision,
    humidity double precision,
    PRIMARY KEY (device, time)
);
SELECT create_hypertable('conditions', 'time', chunk_time_interval => interval '1 day');

CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer text NOT NULL,
    amount numeric(12, 2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
