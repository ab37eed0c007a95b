# dbfleet.postgresql get-pip shim (installed by scripts/sanity.sh; safe to delete, it is re-created).
#
# ansible-test bootstraps pip into each virtual environment it creates by running
# ~/.ansible/test/cache/get_pip_<pip version>.py, which it normally downloads from
# ci-files.testing.ansible.com -- a host this network cannot reach. It runs the script as
#   python <script> --disable-pip-version-check pip==<version> --no-setuptools --no-wheel
# The real get-pip.py embeds a pip wheel; this stand-in gets pip from the interpreter's own
# ensurepip instead, then installs the requested packages from the package index.
# `--no-setuptools` / `--no-wheel` are get-pip.py options that `pip install` does not know; they
# are honoured by removing what ensurepip added (Python 3.11's ensurepip also installs setuptools).
import importlib.util
import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")


def main():
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    had_setuptools = importlib.util.find_spec("setuptools") is not None
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
    if "--no-setuptools" in sys.argv[1:] and not had_setuptools:
        subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "setuptools"])


if __name__ == "__main__":
    main()
