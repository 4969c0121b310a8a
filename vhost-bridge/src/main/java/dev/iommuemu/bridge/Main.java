package dev.iommuemu.bridge;

/** Entry point of the iommu-emu daemon. */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        System.out.println("iommu-emu daemon");
    }
}
