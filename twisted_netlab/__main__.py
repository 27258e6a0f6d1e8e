"""``python -m twisted_netlab``: the ``netlab`` command."""

from twisted_netlab.cli import main

if __name__ == "__main__":
    main()
