"""Operations on Google Cloud: deploy, teardown, Secret Manager."""
