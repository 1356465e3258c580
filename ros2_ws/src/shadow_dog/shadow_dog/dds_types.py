"""ROS 2 message types as plain DDS types, for the `cyclonedds` wheel.

ROS 2 (rmw_cyclonedds, rmw_fastrtps) puts message `pkg/msg/Type` on the wire as the IDL struct
`pkg::msg::dds_::Type_`, fields in the .msg order, `byte` as octet, `bool` as boolean, `T[]` as sequence<T>. The same
convention is how Unitree's SDK talks to a Go2 (`unitree_api::msg::dds_::Request_`). Field names, order and types
here follow the .msg files exactly; a change in them breaks interoperability, so tests pin the type names.
(No `from __future__ import annotations` here: cyclonedds resolves the field annotations at run time.)
"""

from dataclasses import dataclass, field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import final
from cyclonedds.idl.types import (
    array,
    byte,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    sequence,
    uint8,
    uint32,
)

# -- builtin_interfaces / std_msgs -------------------------------------------------------------------------------------


@dataclass
@final
class Time_(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32 = 0
    nanosec: uint32 = 0


@dataclass
@final
class Header_(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time_ = field(default_factory=Time_)
    frame_id: str = ""


@dataclass
@final
class String_(IdlStruct, typename="std_msgs::msg::dds_::String_"):
    data: str = ""


@dataclass
@final
class Bool_(IdlStruct, typename="std_msgs::msg::dds_::Bool_"):
    data: bool = False


@dataclass
@final
class Empty_(IdlStruct, typename="std_msgs::msg::dds_::Empty_"):
    # ROS 2's IDL for an empty message: a struct needs one member.
    structure_needs_at_least_one_member: uint8 = 0


# -- geometry_msgs -------------------------------------------------------------------------------------------------------


@dataclass
@final
class Vector3_(IdlStruct, typename="geometry_msgs::msg::dds_::Vector3_"):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0


@dataclass
@final
class Twist_(IdlStruct, typename="geometry_msgs::msg::dds_::Twist_"):
    linear: Vector3_ = field(default_factory=Vector3_)
    angular: Vector3_ = field(default_factory=Vector3_)


@dataclass
@final
class Point_(IdlStruct, typename="geometry_msgs::msg::dds_::Point_"):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0


@dataclass
@final
class Quaternion_(IdlStruct, typename="geometry_msgs::msg::dds_::Quaternion_"):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0
    w: float64 = 1.0


@dataclass
@final
class Pose_(IdlStruct, typename="geometry_msgs::msg::dds_::Pose_"):
    position: Point_ = field(default_factory=Point_)
    orientation: Quaternion_ = field(default_factory=Quaternion_)


@dataclass
@final
class PoseWithCovariance_(IdlStruct, typename="geometry_msgs::msg::dds_::PoseWithCovariance_"):
    pose: Pose_ = field(default_factory=Pose_)
    covariance: array[float64, 36] = field(default_factory=lambda: [0.0] * 36)


@dataclass
@final
class TwistWithCovariance_(IdlStruct, typename="geometry_msgs::msg::dds_::TwistWithCovariance_"):
    twist: Twist_ = field(default_factory=Twist_)
    covariance: array[float64, 36] = field(default_factory=lambda: [0.0] * 36)


# -- nav_msgs ------------------------------------------------------------------------------------------------------------


@dataclass
@final
class Odometry_(IdlStruct, typename="nav_msgs::msg::dds_::Odometry_"):
    header: Header_ = field(default_factory=Header_)
    child_frame_id: str = ""
    pose: PoseWithCovariance_ = field(default_factory=PoseWithCovariance_)
    twist: TwistWithCovariance_ = field(default_factory=TwistWithCovariance_)


# -- diagnostic_msgs -------------------------------------------------------------------------------------------------------


@dataclass
@final
class KeyValue_(IdlStruct, typename="diagnostic_msgs::msg::dds_::KeyValue_"):
    key: str = ""
    value: str = ""


@dataclass
@final
class DiagnosticStatus_(IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticStatus_"):
    level: byte = 0
    name: str = ""
    message: str = ""
    hardware_id: str = ""
    values: sequence[KeyValue_] = field(default_factory=list)


@dataclass
@final
class DiagnosticArray_(IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticArray_"):
    header: Header_ = field(default_factory=Header_)
    status: sequence[DiagnosticStatus_] = field(default_factory=list)


# -- unitree_api (Go2 sport service) ---------------------------------------------------------------------------------------


@dataclass
@final
class RequestIdentity_(IdlStruct, typename="unitree_api::msg::dds_::RequestIdentity_"):
    id: int64 = 0
    api_id: int64 = 0


@dataclass
@final
class RequestLease_(IdlStruct, typename="unitree_api::msg::dds_::RequestLease_"):
    id: int64 = 0


@dataclass
@final
class RequestPolicy_(IdlStruct, typename="unitree_api::msg::dds_::RequestPolicy_"):
    priority: int32 = 0
    noreply: bool = False


@dataclass
@final
class RequestHeader_(IdlStruct, typename="unitree_api::msg::dds_::RequestHeader_"):
    identity: RequestIdentity_ = field(default_factory=RequestIdentity_)
    lease: RequestLease_ = field(default_factory=RequestLease_)
    policy: RequestPolicy_ = field(default_factory=RequestPolicy_)


@dataclass
@final
class Request_(IdlStruct, typename="unitree_api::msg::dds_::Request_"):
    header: RequestHeader_ = field(default_factory=RequestHeader_)
    parameter: str = ""
    binary: sequence[uint8] = field(default_factory=list)


# -- unitree_go (the Go2's own state, `rt/sportmodestate`) -------------------------------------------------------------


@dataclass
@final
class TimeSpec_(IdlStruct, typename="unitree_go::msg::dds_::TimeSpec_"):
    sec: int32 = 0
    nanosec: uint32 = 0


@dataclass
@final
class IMUState_(IdlStruct, typename="unitree_go::msg::dds_::IMUState_"):
    quaternion: array[float32, 4] = field(default_factory=lambda: [1.0, 0.0, 0.0, 0.0])
    gyroscope: array[float32, 3] = field(default_factory=lambda: [0.0] * 3)
    accelerometer: array[float32, 3] = field(default_factory=lambda: [0.0] * 3)
    rpy: array[float32, 3] = field(default_factory=lambda: [0.0] * 3)
    temperature: int8 = 0


@dataclass
@final
class SportModeState_(IdlStruct, typename="unitree_go::msg::dds_::SportModeState_"):
    stamp: TimeSpec_ = field(default_factory=TimeSpec_)
    error_code: uint32 = 0
    imu_state: IMUState_ = field(default_factory=IMUState_)
    mode: uint8 = 0
    progress: float32 = 0.0
    gait_type: uint8 = 0
    foot_raise_height: float32 = 0.0
    position: array[float32, 3] = field(default_factory=lambda: [0.0] * 3)
    body_height: float32 = 0.0
    velocity: array[float32, 3] = field(default_factory=lambda: [0.0] * 3)
    yaw_speed: float32 = 0.0
    range_obstacle: array[float32, 4] = field(default_factory=lambda: [0.0] * 4)
    foot_force: array[int16, 4] = field(default_factory=lambda: [0] * 4)
    foot_position_body: array[float32, 12] = field(default_factory=lambda: [0.0] * 12)
    foot_speed_body: array[float32, 12] = field(default_factory=lambda: [0.0] * 12)


def dds_topic(ros_name: str) -> str:
    """ROS 2 topic `/a/b` is DDS topic `rt/a/b`."""
    return "rt/" + ros_name.lstrip("/")
