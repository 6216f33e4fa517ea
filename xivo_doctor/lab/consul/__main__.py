"""`python -m xivo_doctor.lab.consul --root <node root>`: the Consul stand-in's process (see `agent`).

Place in the lab: the command line `lab.state.start_standin` and the tests start; all the work is in
`consul.agent`.
"""

from xivo_doctor.lab.consul.agent import main

if __name__ == "__main__":
    main()
