//! NVIDIA GPUs through NVML, loaded at run time (nvml-wrapper): the binary runs where no
//! NVIDIA library exists, and says so.

use super::{DeviceFacts, Figure, GpuFacts, NotAvailable, Sample, Sampler};
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::gpm::{gpm_metrics_get, GpmSample};
use nvml_wrapper::struct_wrappers::device::FieldValueSample;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::{NVML_FI_DEV_POWER_INSTANT, NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION};
use nvml_wrapper::{Device, Nvml};
use std::ffi::OsStr;
use std::sync::OnceLock;
use std::time::Duration;

/// Library names tried in order (after `SYNPROF_NVML_LIB` if set): the loader's default
/// name, the unversioned one, and where drivers put it when not on the loader's path.
const LIBRARIES: &[&str] = &[
    "libnvidia-ml.so.1",
    "libnvidia-ml.so",
    "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
    "/usr/lib64/libnvidia-ml.so.1",
    "/usr/local/nvidia/lib64/libnvidia-ml.so.1",
    "/usr/lib/wsl/lib/libnvidia-ml.so.1",
];

/// Clocks, utilisation, memory, temperature and GPM change slowly (NVML's utilisation
/// itself covers 1/6 s to 1 s): read them at most this often, power and energy every sample.
const SLOW_EVERY: Duration = Duration::from_millis(100);

/// NVML, initialised once per process; the error says every library tried.
pub fn library() -> Result<&'static Nvml, NotAvailable> {
    static NVML: OnceLock<Result<Nvml, String>> = OnceLock::new();
    NVML.get_or_init(load).as_ref().map_err(|e| NotAvailable(e.clone()))
}

fn load() -> Result<Nvml, String> {
    let from_env = std::env::var("SYNPROF_NVML_LIB").ok();
    let mut first_error = None;
    let mut tried = Vec::new();
    for name in from_env.iter().map(String::as_str).chain(LIBRARIES.iter().copied()) {
        match Nvml::builder().lib_path(OsStr::new(name)).init() {
            Ok(nvml) => return Ok(nvml),
            // the library is missing here: try the next name
            Err(NvmlError::LibloadingError(e)) => {
                first_error.get_or_insert_with(|| e.to_string());
                tried.push(name);
            }
            Err(e) => return Err(format!("NVML ({name}) loaded but did not start: {e}")),
        }
    }
    Err(format!(
        "NVML cannot be loaded, no NVIDIA driver library here ({}; tried {})",
        first_error.unwrap_or_default(),
        tried.join(", ")
    ))
}

/// Facts about every GPU NVML sees.
pub fn all_gpu_facts() -> Result<Vec<GpuFacts>, NotAvailable> {
    let nvml = library()?;
    let count = nvml.device_count().map_err(|e| NotAvailable(format!("NVML cannot count GPUs: {e}")))?;
    if count == 0 {
        return Err(NotAvailable("NVML reports no GPUs".into()));
    }
    Ok((0..count).map(|i| NvmlSampler::new(i).map(|s| s.facts()).unwrap_or_else(|e| missing_gpu(i, e))).collect())
}

fn missing_gpu(index: u32, e: NotAvailable) -> GpuFacts {
    fn na<T>(e: &NotAvailable) -> Figure<T> {
        Figure::na(e.0.clone())
    }
    GpuFacts {
        index,
        name: na(&e),
        uuid: na(&e),
        architecture: na(&e),
        compute_capability: na(&e),
        driver_version: na(&e),
        cuda_driver_version: na(&e),
        memory_total_bytes: na(&e),
        power_limit_w: na(&e),
        default_power_limit_w: na(&e),
        sm_clock_mhz: na(&e),
        mem_clock_mhz: na(&e),
        max_sm_clock_mhz: na(&e),
        max_mem_clock_mhz: na(&e),
        temperature_c: na(&e),
        power_instant: na(&e),
        power_average: na(&e),
        energy_counter: na(&e),
        gpm: na(&e),
    }
}

/// Names of the throttle (clock event) reasons set in `reasons`, snake_case.
pub fn throttle_names(reasons: ThrottleReasons) -> Vec<String> {
    let names = [
        (ThrottleReasons::GPU_IDLE, "gpu_idle"),
        (ThrottleReasons::APPLICATIONS_CLOCKS_SETTING, "applications_clocks_setting"),
        (ThrottleReasons::SW_POWER_CAP, "sw_power_cap"),
        (ThrottleReasons::HW_SLOWDOWN, "hw_slowdown"),
        (ThrottleReasons::SYNC_BOOST, "sync_boost"),
        (ThrottleReasons::SW_THERMAL_SLOWDOWN, "sw_thermal_slowdown"),
        (ThrottleReasons::HW_THERMAL_SLOWDOWN, "hw_thermal_slowdown"),
        (ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN, "hw_power_brake_slowdown"),
        (ThrottleReasons::DISPLAY_CLOCK_SETTING, "display_clock_setting"),
    ];
    names.iter().filter(|(flag, _)| reasons.contains(*flag)).map(|(_, n)| n.to_string()).collect()
}

/// One GPU's figures. Power and energy are read first, nearest the sample's timestamp.
pub struct NvmlSampler {
    index: u32,
    name: String,
    device: Device<'static>,
    nvml: &'static Nvml,
    /// Field ids read in one NVML call per sample: instantaneous power and/or total energy.
    fields: Vec<FieldId>,
    power_instant: Result<(), String>,
    energy_field: Result<(), String>,
    energy_call: Result<(), String>,
    gpm: Result<Option<(GpmSample<'static>, Duration)>, String>,
    last_slow: Option<Duration>,
}

impl NvmlSampler {
    pub fn new(index: u32) -> Result<NvmlSampler, NotAvailable> {
        let nvml = library()?;
        let device = nvml.device_by_index(index).map_err(|e| NotAvailable(format!("NVML has no GPU {index}: {e}")))?;
        let name = format!("nvml:{index}");
        let field_ok = |id: u32| -> Result<(), String> {
            let values = device.field_values_for(&[FieldId(id)]).map_err(|e| e.to_string())?;
            match values.into_iter().next() {
                Some(Ok(FieldValueSample { value: Ok(_), .. })) => Ok(()),
                Some(Ok(FieldValueSample { value: Err(e), .. })) | Some(Err(e)) => Err(e.to_string()),
                None => Err("NVML returned no value".into()),
            }
        };
        let power_instant = field_ok(NVML_FI_DEV_POWER_INSTANT);
        let energy_field = field_ok(NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION);
        let energy_call = device.total_energy_consumption().map(drop).map_err(|e| e.to_string());
        let mut fields = Vec::new();
        if power_instant.is_ok() {
            fields.push(FieldId(NVML_FI_DEV_POWER_INSTANT));
        }
        if energy_field.is_ok() {
            fields.push(FieldId(NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION));
        }
        let gpm = match device.gpm_support() {
            Ok(true) => Ok(None),
            Ok(false) => Err("this GPU has no GPM (Hopper and newer only)".into()),
            Err(e) => Err(format!("GPM query failed: {e}")),
        };
        Ok(NvmlSampler {
            index,
            name,
            device,
            nvml,
            fields,
            power_instant,
            energy_field,
            energy_call,
            gpm,
            last_slow: None,
        })
    }

    fn read_power(&mut self, sample: &mut Sample) {
        if !self.fields.is_empty() {
            if let Ok(values) = self.device.field_values_for(&self.fields) {
                for v in values.into_iter().flatten() {
                    let Ok(value) = v.value else { continue };
                    match v.field.0 {
                        NVML_FI_DEV_POWER_INSTANT => {
                            sample.power_w = Some(as_f64(value) / 1e3);
                            sample.power_updated_us = Some(v.timestamp);
                        }
                        NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION => sample.energy_counter_mj = Some(as_u64(value)),
                        _ => {}
                    }
                }
            }
        }
        if sample.energy_counter_mj.is_none() && self.energy_call.is_ok() {
            sample.energy_counter_mj = self.device.total_energy_consumption().ok();
        }
        sample.power_avg_w = self.device.power_usage().ok().map(|mw| mw as f64 / 1e3);
    }

    fn read_slow(&mut self, t: Duration, sample: &mut Sample) {
        let d = &self.device;
        if let Ok(u) = d.utilization_rates() {
            sample.gpu_util_pct = Some(u.gpu as f64);
            sample.mem_util_pct = Some(u.memory as f64);
        }
        if let Ok(m) = d.memory_info() {
            sample.mem_used_bytes = Some(m.used);
            sample.mem_total_bytes = Some(m.total);
        }
        sample.sm_clock_mhz = d.clock_info(Clock::SM).ok();
        sample.mem_clock_mhz = d.clock_info(Clock::Memory).ok();
        sample.temperature_c = d.temperature(TemperatureSensor::Gpu).ok().map(f64::from);
        sample.power_limit_w = d.enforced_power_limit().ok().map(|mw| mw as f64 / 1e3);
        sample.pstate = d.performance_state().ok().map(|p| p.as_c()).filter(|&p| p <= 15).map(|p| p as u8);
        sample.throttle_reasons = d.current_throttle_reasons().ok().map(throttle_names);
        self.read_gpm(t, sample);
    }

    /// GPM metrics cover the time between two GPM samples: keep the previous one.
    fn read_gpm(&mut self, t: Duration, sample: &mut Sample) {
        let Ok(state) = &mut self.gpm else { return };
        let now = match self.device.gpm_sample() {
            Ok(s) => s,
            Err(e) => {
                self.gpm = Err(format!("GPM sample failed: {e}"));
                return;
            }
        };
        if let Some((previous, _)) = state.as_ref() {
            let ids =
                [GpmMetricId::SmUtil, GpmMetricId::SmOccupancy, GpmMetricId::AnyTensorUtil, GpmMetricId::DramBwUtil];
            if let Ok(results) = gpm_metrics_get(self.nvml, previous, &now, &ids) {
                let v: Vec<Option<f64>> = results.into_iter().map(|r| r.ok().map(|m| m.value)).collect();
                sample.gpm_sm_util_pct = v[0];
                sample.gpm_sm_occupancy_pct = v[1];
                sample.gpm_tensor_active_pct = v[2];
                sample.gpm_dram_bw_util_pct = v[3];
            }
        }
        *state = Some((now, t));
    }

    pub fn facts(&self) -> GpuFacts {
        let d = &self.device;
        let nvml = self.nvml;
        let mw = |r: Result<u32, NvmlError>| -> Figure<f64> { r.map(|mw| mw as f64 / 1e3).into() };
        let cuda = nvml.sys_cuda_driver_version().map(|v| {
            format!("{}.{}", nvml_wrapper::cuda_driver_version_major(v), nvml_wrapper::cuda_driver_version_minor(v))
        });
        let source = |r: &Result<(), String>, what: &str| -> Figure<String> {
            match r {
                Ok(()) => Figure::Value(what.to_string()),
                Err(e) => Figure::na(e.clone()),
            }
        };
        GpuFacts {
            index: self.index,
            name: d.name().into(),
            uuid: d.uuid().into(),
            architecture: d.architecture().map(|a| a.to_string()).into(),
            compute_capability: d.cuda_compute_capability().map(|c| format!("{}.{}", c.major, c.minor)).into(),
            driver_version: nvml.sys_driver_version().into(),
            cuda_driver_version: cuda.into(),
            memory_total_bytes: d.memory_info().map(|m| m.total).into(),
            power_limit_w: mw(d.enforced_power_limit()),
            default_power_limit_w: mw(d.power_management_limit_default()),
            sm_clock_mhz: d.clock_info(Clock::SM).into(),
            mem_clock_mhz: d.clock_info(Clock::Memory).into(),
            max_sm_clock_mhz: d.max_clock_info(Clock::SM).into(),
            max_mem_clock_mhz: d.max_clock_info(Clock::Memory).into(),
            temperature_c: d.temperature(TemperatureSensor::Gpu).map(f64::from).into(),
            power_instant: source(&self.power_instant, "field NVML_FI_DEV_POWER_INSTANT"),
            power_average: d
                .power_usage()
                .map(|_| "nvmlDeviceGetPowerUsage (1 s average on Ampere except A100, and newer)".to_string())
                .into(),
            energy_counter: match (&self.energy_field, &self.energy_call) {
                (Ok(()), _) => Figure::Value("field NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ)".into()),
                (_, Ok(())) => Figure::Value("nvmlDeviceGetTotalEnergyConsumption (mJ)".into()),
                (_, Err(e)) => Figure::na(format!("{e} (Volta and newer only)")),
            },
            gpm: match &self.gpm {
                Ok(_) => Figure::Value("SM utilisation and occupancy, tensor activity, DRAM bandwidth".into()),
                Err(e) => Figure::na(e.clone()),
            },
        }
    }
}

fn as_f64(v: SampleValue) -> f64 {
    match v {
        SampleValue::F64(x) => x,
        SampleValue::U32(x) => x as f64,
        SampleValue::U64(x) => x as f64,
        SampleValue::I64(x) => x as f64,
    }
}

fn as_u64(v: SampleValue) -> u64 {
    match v {
        SampleValue::F64(x) => x.max(0.0) as u64,
        SampleValue::U32(x) => x as u64,
        SampleValue::U64(x) => x,
        SampleValue::I64(x) => x.max(0) as u64,
    }
}

impl Sampler for NvmlSampler {
    fn name(&self) -> &str {
        &self.name
    }

    fn sample(&mut self, t: Duration) -> Sample {
        let mut sample = Sample::at(t);
        self.read_power(&mut sample);
        if self.last_slow.is_none_or(|last| t >= last + SLOW_EVERY) {
            self.last_slow = Some(t);
            self.read_slow(t, &mut sample);
        }
        sample
    }

    fn sample_power(&mut self, t: Duration) -> Sample {
        let mut sample = Sample::at(t);
        self.read_power(&mut sample);
        sample
    }

    fn describe(&self) -> DeviceFacts {
        DeviceFacts { gpus: vec![self.facts()], ..DeviceFacts::default() }
    }
}
