# The project image: the training pipeline's components on Vertex AI Pipelines AND the model
# server behind the Vertex AI endpoint (custom-container contract: AIP_HTTP_PORT,
# AIP_HEALTH_ROUTE, AIP_PREDICT_ROUTE, AIP_STORAGE_URI). One image, so the code that trained
# and evaluated a model is the code that serves it.
#
#   docker build -t <region>-docker.pkg.dev/<project>/<repo>/potability:<tag> .
#   PIPELINE_IMAGE=<that tag> potability pipeline compile      # YAML naming this image
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv

# uv at the version the Makefile pins; installs exactly what uv.lock says (no dev group).
RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app
# Dependencies first (cached layer while only code changes).
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

COPY potability/ potability/
COPY training/ training/
COPY components/ components/
COPY pipelines/ pipelines/
COPY functions/ functions/
COPY sql/ sql/
COPY data/ data/
RUN uv sync --frozen --no-dev --no-editable

# KFP runs components as `python3 -m kfp.dsl.executor_main ...`: the venv comes first on PATH.
ENV PATH=/opt/venv/bin:$PATH \
    AIP_HTTP_PORT=8080 \
    AIP_HEALTH_ROUTE=/health \
    AIP_PREDICT_ROUTE=/predict

# Runs as root, deliberately (issue 28). This image is every Vertex AI pipeline step's image, and a
# step writes its outputs (the executor output, artifacts) under /gcs/<pipeline root>, Vertex's
# Cloud Storage FUSE mount (vertex-ai/docs/training/cloud-storage-file-system). Whether a non-root
# user may write there is documented nowhere by Google; open-source KFP failed exactly there
# ("paths like /gcs/xxx ... are not accessible by non-Root users by default": kubeflow/pipelines
# #5673, fixed in KFP's own launcher by #6530, not something Vertex documents), and the images
# Google's KFP components default to (python:3.x) run as root. A `USER app` here would make the
# first pipeline run the test of an undocumented behaviour, so the risk is removed instead. What
# the code may reach does not depend on the uid: it is the service account's (metadata server),
# and each process runs alone in Google's sandbox (Vertex AI job, Cloud Run, the endpoint).
# Not /app: `python -m` puts the working directory first on sys.path, and /app holds the build
# context, a source copy. Every command runs from the installed copy in /opt/venv only (sql/ and
# data/ are its package data) - tests/test_image.py builds this environment as above and runs each
# command the cloud runs from another directory, with the build context deleted.
WORKDIR /home/app
EXPOSE 8080
# Serving by default; Vertex Pipelines overrides the command for components.
CMD ["python", "-m", "potability.serving.model_server"]
