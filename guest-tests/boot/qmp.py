#!/usr/bin/env python3
"""A QMP client for the boot runner (QEMU docs/interop/qmp-spec.rst): migrate a VM, or quit it.

  qmp.py SOCKET migrate URI     # starts the migration, waits for it, prints its statistics
  qmp.py SOCKET quit
Exit status 0 when the migration completed (or the quit was accepted).
"""
import json
import socket
import sys
import time


class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(30)
        self.s.connect(path)
        self.f = self.s.makefile('r')
        json.loads(self.f.readline())  # the greeting
        self.cmd('qmp_capabilities')

    def cmd(self, name, **args):
        self.s.sendall(json.dumps({'execute': name, 'arguments': args}).encode() + b'\n')
        while True:
            msg = json.loads(self.f.readline())
            if 'event' in msg:
                continue
            if 'error' in msg:
                raise RuntimeError('%s: %s' % (name, msg['error'].get('desc')))
            return msg.get('return')


def main():
    path, what = sys.argv[1], sys.argv[2]
    q = Qmp(path)
    if what == 'quit':
        q.cmd('quit')
        return 0
    q.cmd('migrate', uri=sys.argv[3])
    deadline = time.time() + 120
    while time.time() < deadline:
        st = q.cmd('query-migrate')
        status = st.get('status')
        if status == 'completed':
            ram = st.get('ram', {})
            print('migrate: completed total-time %s ms downtime %s ms ram-transferred %s bytes'
                  % (st.get('total-time'), st.get('downtime'), ram.get('transferred')))
            return 0
        if status in ('failed', 'cancelled'):
            print('migrate: %s: %s' % (status, st.get('error-desc', '')))
            return 1
        time.sleep(0.05)
    print('migrate: did not complete in 120 s')
    return 1


if __name__ == '__main__':
    sys.exit(main())
