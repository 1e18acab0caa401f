"""``mnemax-envs``: the registered environment ids, and the parameters of some of them.

    mnemax-envs                          # every id with its description, one per line
    mnemax-envs mnemax/TMaze-Passive-v0  # its parameters: value and what each accepts
"""

from __future__ import annotations

from mnemax.envs.core.params import describe_params
from mnemax.envs.core.registration import NAMESPACE, make, registered_ids, spec
from mnemax.envs.tools.command_line import ArgumentParser, reported_errors


def main(argv: list[str] | None = None) -> None:
    """``mnemax-envs``: every registered id with its description, one per line; with ids, the parameters
    of each (value, what it accepts)."""
    parser = ArgumentParser(prog="mnemax-envs", description=main.__doc__.replace("``", ""))
    parser.add_argument("ids", nargs="*", help="ids whose parameters to show")
    args = parser.parse_args(argv)
    with reported_errors("mnemax-envs", args.debug, user_errors=(ValueError,)):
        if not args.ids:
            width = max(map(len, registered_ids()))
            for id in registered_ids():
                print(f"{id:<{width}}  {spec(id).description}")
        for id in args.ids:
            _, params = make(id)
            print(f"{NAMESPACE}/{spec(id).id}: {spec(id).description}")
            for line in describe_params(params):
                print(f"  {line}")


if __name__ == "__main__":
    main()
