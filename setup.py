"""draw_jax: DRAW (Gregor et al., ICML 2015) in JAX and Flax NNX."""
import setuptools

setuptools.setup(
    name='draw_jax',
    version='0.1.0',
    description='DRAW: a recurrent VAE with differentiable attention, in JAX/Flax',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=['draw_jax', 'configs'],
    python_requires='>=3.10',
    # The versions every figure in README.md was measured with.
    install_requires=[
        'jax>=0.10.2,<0.11',
        'flax>=0.12.8,<0.13',
        'optax>=0.2.8,<0.3',
        'orbax-checkpoint>=0.12.8,<0.13',
        'ml-collections>=1.1,<2',
        'absl-py>=2.1',
        'numpy>=1.26',
        'imageio>=2.34',
        'tensorboardX>=2.6',
    ],
    extras_require={
        # The online data path; its MNIST builders also need TensorFlow, and it
        # uses but does not declare importlib_resources.
        'tfds': ['tensorflow-datasets>=4.9', 'tensorflow-cpu', 'importlib_resources'],
        'dev': ['pytest>=8', 'pytest-xdist>=3', 'nbclient>=0.10', 'nbformat>=5.10',
                'ipykernel>=6.29'],
    },
)
