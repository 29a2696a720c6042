# AReaL's GPU runtime image plus areal-a3po, built from this checkout (no package index is asked
# for areal-a3po: it is not on one). docs/recipes.md, "The image"; the recipes' $IMAGE.
#
#   docker build -t areal-a3po:1.0.4 .
#   docker build -t areal-a3po:2.0.0 --build-arg AREAL_IMAGE=ghcr.io/areal-project/areal-runtime:v2.0.0-sglang .
#   apptainer build /storage/areal-a3po/areal-a3po.sif docker-daemon://areal-a3po:1.0.4
#   apptainer exec /storage/areal-a3po/areal-a3po.sif a3po info     # must print hooked=True
#
# AReaL's runtime image holds AReaL itself (installed editable at /AReaL from the image's tag),
# its GPU stack (torch, SGLang, flash-attn: AReaL's default attn_impl), uv, and its environment
# first on PATH: a venv made by `uv venv`, which has no pip (`python3 -m pip` fails there with "No
# module named pip"), so both stages use uv. The wheel goes into that environment with --no-deps,
# so none of AReaL's packages change. AREAL_IMAGE, the image to build on (areal-a3po supports
# areal >=1.0.4,<2.1):
#   ghcr.io/inclusionai/areal-runtime:v1.0.4-sglang     areal 1.0.4 (the default)
#   ghcr.io/areal-project/areal-runtime:v2.0.0-sglang   AReaL 2.0.0 (the organisation was renamed)
ARG AREAL_IMAGE=ghcr.io/inclusionai/areal-runtime:v1.0.4-sglang

# Stage 1: the wheel of this checkout (what tests/test_install_modes.py builds from these copies
# and, in a pip-less `uv venv`, with this stage's own RUN line). uv builds in an isolated
# environment with the build backend (hatchling) from the package index.
FROM ${AREAL_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md areal_a3po.pth ./
COPY areal_a3po ./areal_a3po
COPY recipes ./recipes
RUN uv build --wheel --python "$(command -v python3)" --out-dir /wheels .

# Stage 2: the runtime image with the wheel installed into the python3 first on PATH.
FROM ${AREAL_IMAGE}
COPY --from=wheel /wheels/ /tmp/areal-a3po-wheels/
RUN uv pip install --python "$(command -v python3)" --no-deps --no-index \
        /tmp/areal-a3po-wheels/areal_a3po-*.whl \
    && rm -rf /tmp/areal-a3po-wheels \
    && a3po info
