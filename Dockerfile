# AReaL's GPU runtime image plus areal-a3po, built from this checkout (no package index is asked
# for areal-a3po: it is not on one). docs/recipes.md, "The image"; the recipes' $IMAGE.
#
#   docker build -t areal-a3po:1.0.4 .
#   apptainer build /storage/areal-a3po/areal-a3po.sif docker-daemon://areal-a3po:1.0.4
#   apptainer exec /storage/areal-a3po/areal-a3po.sif a3po info     # must print hooked=True
#
# AReaL's runtime image holds AReaL itself (installed editable at /AReaL from the image's tag),
# its GPU stack (torch, SGLang, flash-attn: AReaL's default attn_impl) and its environment first on
# PATH. The wheel goes into that environment with --no-deps, so none of those change. For another
# AReaL: --build-arg AREAL_IMAGE=... (areal-a3po supports areal >=1.0.4,<2.1).
ARG AREAL_IMAGE=ghcr.io/inclusionai/areal-runtime:v1.0.4-sglang

# Stage 1: the wheel of this checkout (what tests/test_install_modes.py builds from these copies).
FROM ${AREAL_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md areal_a3po.pth ./
COPY areal_a3po ./areal_a3po
COPY recipes ./recipes
RUN python3 -m pip wheel --no-deps --wheel-dir /wheels .

# Stage 2: the runtime image with the wheel installed into the python3 first on PATH.
FROM ${AREAL_IMAGE}
COPY --from=wheel /wheels/ /tmp/areal-a3po-wheels/
RUN uv pip install --python "$(command -v python3)" --no-deps --no-index \
        /tmp/areal-a3po-wheels/areal_a3po-*.whl \
    && rm -rf /tmp/areal-a3po-wheels \
    && a3po info
