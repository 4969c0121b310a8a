/**
 * The device-state blob (docs/device-state.md, proto iommuemu/v1/device_state.proto): the versioned
 * {@link dev.iommuemu.proto.devstate.v1.DeviceState} envelope ({@link DeviceStateCodec}) and each model's
 * state in it ({@link Smmuv3StateCodec}). Codecs only: the models save and restore themselves, the
 * devices ({@link dev.iommuemu.bridge.device.BridgedDevice#saveState()}) put the two together.
 */
package dev.iommuemu.bridge.state;
