-- Rate limit rules count requests or (AI API) tokens; `max_requests` holds the maximum in that unit.
ALTER TABLE limit_rules ADD COLUMN unit TEXT NOT NULL DEFAULT 'requests';
