"""scripts/ is not a package: tests load a script's file as a module."""
import importlib.util
import pathlib

SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / 'scripts'


def load(name):
  """scripts/<name>.py as a module; the scripts define their flags in main."""
  spec = importlib.util.spec_from_file_location(name, SCRIPTS / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
