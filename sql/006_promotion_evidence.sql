-- 006: the evidence behind each promotion decision (issue 11), written by promote.
--   champion_precision_low/high: 95% bootstrap interval of the champion's held-out precision
--     (what the status page shows beside the precision);
--   precision_difference(_low/_high): challenger minus champion held-out precision on the
--     same rows, each at its own threshold, with its 95% paired-bootstrap interval;
--   probability_challenger_better: share of bootstrap resamples in which the challenger was
--     more precise; promotion_confidence: the share it needed to replace the champion.
-- NULL where there was nothing to compare (a first champion) and for runs before this file.

ALTER TABLE water.pipeline_runs
    ADD COLUMN champion_precision_low        double precision
        CHECK (champion_precision_low BETWEEN 0 AND 1),
    ADD COLUMN champion_precision_high       double precision
        CHECK (champion_precision_high BETWEEN 0 AND 1),
    ADD COLUMN promotion_confidence          double precision
        CHECK (promotion_confidence > 0 AND promotion_confidence <= 1),
    ADD COLUMN precision_difference          double precision
        CHECK (precision_difference BETWEEN -1 AND 1),
    ADD COLUMN precision_difference_low      double precision
        CHECK (precision_difference_low BETWEEN -1 AND 1),
    ADD COLUMN precision_difference_high     double precision
        CHECK (precision_difference_high BETWEEN -1 AND 1),
    ADD COLUMN probability_challenger_better double precision
        CHECK (probability_challenger_better BETWEEN 0 AND 1),
    ADD CONSTRAINT pipeline_runs_precision_interval_order
        CHECK (champion_precision_low <= champion_precision_high),
    ADD CONSTRAINT pipeline_runs_difference_interval_order
        CHECK (precision_difference_low <= precision_difference_high);
