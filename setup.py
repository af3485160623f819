"""draw_jax: DRAW (Gregor et al., ICML 2015) in JAX and Flax NNX."""
import setuptools

setuptools.setup(
    name='draw_jax',
    version='0.1.0',
    description=('DRAW, the recurrent VAE that draws with differentiable '
                 'attention (Gregor et al., ICML 2015), in JAX and Flax NNX'),
    # Only the package: configs/*.py are files to run and copy, and import
    # nothing but draw_jax, so no top-level `configs` module is installed.
    packages=['draw_jax'],
    python_requires='>=3.10',
    # The versions every figure in README.md and docs/ was measured with.
    install_requires=[
        'jax>=0.10.2,<0.11',
        'flax>=0.12.8,<0.13',
        'optax>=0.2.8,<0.3',
        'orbax-checkpoint>=0.12.8,<0.13',
        'ml-collections>=1.1,<2',
        'absl-py>=2.1',
        'numpy>=1.26',
        'scipy>=1.11',  # SVHN's .mat files
        'imageio>=2.34',
        'tensorboardX>=2.6',
    ],
    extras_require={
        # The online data path. Its MNIST builders need TensorFlow, and it
        # imports importlib_resources without declaring it.
        'tfds': ['tensorflow-datasets>=4.9', 'tensorflow-cpu',
                 'importlib_resources'],
        'dev': ['pytest>=8', 'pytest-xdist>=3', 'nbclient>=0.10',
                'nbformat>=5.10', 'ipykernel>=6.29', 'matplotlib>=3.8'],
    },
)
