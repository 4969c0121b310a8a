"""Tests of the Python control client against a running daemon whose registry has the test model
"fake" (vhost-bridge's FakeDevice); run by vhost-bridge's PythonClientTest with
IOMMU_EMU_CONTROL set. Stream 4 of the fake walks a table of u64 page addresses at guest physical 0."""

import os
import struct
import threading
import unittest

import iommuemu_client as ie
from iommuemu.v1 import control_pb2

CONTROL = os.environ.get("IOMMU_EMU_CONTROL", "/tmp/iommu-emu-control.sock")
FAKE_ID = 0x123456789ABCDEF0


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.c = ie.ControlClient(CONTROL)
        self.s = self.c.create_session("fake", "")
        self.id = self.s.id
        self.c.add_memory(self.id, 0, 1 << 20)

    def tearDown(self):
        self.c.close()

    def test_session_memory_translate(self):
        self.assertEqual("fake", self.s.model)
        self.assertEqual(["evtq", "priq", "cmdq-sync", "gerror"], list(self.s.irq_lines))
        # page 3 of stream 4 -> 0x9000, writable
        self.c.write_memory(self.id, 3 * 8, struct.pack("<Q", 0x9000 | 3))
        self.assertEqual(struct.pack("<Q", 0x9003), self.c.read_memory(self.id, 24, 8))
        t = self.c.translate(self.id, 4, 0x3ABC, self.c.access(write=True))
        self.assertEqual(0x9ABC, t.translated.output_address)
        self.assertEqual(0xFFF, t.translated.address_mask)
        self.assertTrue(t.translated.write)
        f = self.c.translate(self.id, 4, 0x5000)
        self.assertEqual("F_TRANSLATION", f.fault.type)
        w = self.c.walk(self.id, 4, 0x5000)
        self.assertEqual(40, w.steps[0].descriptor_address)
        self.assertEqual(control_pb2.DESCRIPTOR_KIND_INVALID, w.steps[0].kind)
        self.assertEqual("F_TRANSLATION", w.result.fault.type)
        self.assertEqual(1, w.result.fault.stage)
        self.assertEqual(3, w.result.fault.level)
        self.assertEqual("IN", w.result.fault.fault_class)
        self.assertEqual(40, w.result.fault.descriptor_address)
        counters = self.c.counters(self.id)
        self.assertEqual(0, counters["translations"])  # Translate and Walk are diagnostics
        self.assertEqual(0, counters["faults"])
        self.assertEqual("F_TRANSLATION", self.c.inject_fault(self.id, 4, 0x5000).fault.type)
        counters = self.c.counters(self.id)
        self.assertEqual(1, counters["translations"])
        self.assertEqual(1, counters["faults"])

    def test_registers_and_errors(self):
        self.assertEqual(FAKE_ID, self.c.read_register(self.id, 0, 8))
        self.c.write_register(self.id, 8, 0x77, 8)
        self.assertEqual(0x77, self.c.read_register(self.id, 8, 8))
        with self.assertRaises(ie.ControlError) as e:
            self.c.read_register(self.id, 0x4000, 4)
        self.assertEqual(22, e.exception.errno)
        with self.assertRaises(ie.ControlError) as e:
            self.c.read_memory(self.id, 1 << 30, 8)
        self.assertEqual(14, e.exception.errno)
        status = self.c.status()
        self.assertIn(self.id, [s.id for s in status.sessions])

    def test_events_stream(self):
        got = []
        ready = threading.Event()

        def follow():
            with ie.ControlClient(CONTROL) as f:
                events = f.follow_events(self.id)
                ready.set()
                for ev in events:
                    got.append(ev)
                    if len(got) == 2:
                        return

        t = threading.Thread(target=follow)
        t.start()
        self.assertTrue(ready.wait(5))
        self.c.inject_fault(self.id, 2, 0x1000)
        self.c.write_register(self.id, 0x18, 3, 8)  # raise "gerror"
        t.join(5)
        self.assertEqual(["fault", "irq"], [e.kind for e in got])
        self.assertEqual("gerror", got[1].detail)


if __name__ == "__main__":
    unittest.main()
