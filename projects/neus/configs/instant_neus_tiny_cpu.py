# The demo scene at the demo's CPU settings (its on_cpu block), forced onto the CPU: used by the tests and for
# CPU smoke runs on any machine.
_base_ = 'instant_neus_demo.py'

exp_name = 'tiny_cpu'
device = 'cpu'
