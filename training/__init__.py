"""Training as a library: the dataset, the split, the candidates, their scores, the promotion
decision and its record, the figures - plain functions the pipeline's steps (``components/``)
call, and the benchmarks and tests call directly."""
