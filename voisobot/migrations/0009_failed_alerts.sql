-- Version 9: the alerts refused for good, found without reading every alert. /readyz and
-- /metrics count them on every probe and scrape (ops.py, Outbox.backlog), and `redeliver`
-- queues them again; there are few of them among hundreds of thousands of alerts.
CREATE INDEX alerts_failed ON alerts (id) WHERE state = 'failed';
