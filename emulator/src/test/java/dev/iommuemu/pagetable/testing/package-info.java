/**
 * Test support for anything that walks VMSAv8-64 translation tables, shipped in the emulator's
 * test-jar: {@link dev.iommuemu.pagetable.testing.PageTableBuilder} writes stage 1 and stage 2
 * tables of any granule into guest memory and hands back the matching configuration, and
 * {@link dev.iommuemu.pagetable.testing.ReferenceWalker} is an independent, deliberately simple
 * walk to compare a model against.
 */
package dev.iommuemu.pagetable.testing;
