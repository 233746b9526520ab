# frozen_string_literal: true

require 'json'
require 'time'

# logger.rb - Logger-like objects whose lines go to tasker's structured log (JSON lines on
# stderr with ts, level, component, msg): the step logger (context.logger, which adds the
# step's correlation_id, task_uuid and step_uuid) and the worker's own (TaskerCore.logger).
#
# They answer debug/info/warn/error/fatal (fatal is logged as error), with a message or a
# block (the block is not called when the level is off), and debug?/info?/... like Ruby's
# Logger. The level is tasker's log.level (--set log.level=debug).
module TaskerCore
  LOG_LEVELS = { error: 0, warn: 1, info: 2, debug: 3, trace: 4 }.freeze

  # Base: subclasses define write(level_number, text).
  class StructuredLogger
    LOG_LEVELS.each do |name, number|
      define_method(name) { |message = nil, &block| log(number, message, &block) }
      define_method(:"#{name}?") { number <= threshold }
    end

    def fatal(message = nil, &block)
      log(LOG_LEVELS[:error], message, &block)
    end

    def fatal?
      true
    end

    def unknown(message = nil, &block)
      log(LOG_LEVELS[:error], message, &block)
    end

    # Logger#add(severity, message, progname) with Logger's severities (0 debug .. 4 fatal).
    def add(severity, message = nil, progname = nil, &block)
      number = { 0 => 3, 1 => 2, 2 => 1 }.fetch(severity.to_i, 0)
      log(number, message || progname, &block)
    end

    def <<(message)
      log(LOG_LEVELS[:info], message)
    end

    def threshold
      defined?(TaskerCore::Native) && TaskerCore::Native.respond_to?(:log_threshold) ? Native.log_threshold : 2
    end

    def level
      threshold
    end

    private

    def log(number, message, &block)
      return true if number > threshold

      message = block.call if message.nil? && block
      write(number, stringify(message))
      true
    end

    def stringify(message)
      case message
      when String then message
      when Exception then "#{message.class}: #{message.message}"
      else message.inspect
      end
    end
  end

  # context.logger: lines about one step (component "handler").
  class StepLogger < StructuredLogger
    def initialize(step)
      super()
      @step = step
    end

    private

    def write(number, text)
      @step.log(number, text)
    end
  end

  # TaskerCore.logger: the Ruby worker's own lines (component "ruby").
  class WorkerLogger < StructuredLogger
    private

    def write(number, text)
      if defined?(TaskerCore::Native) && TaskerCore::Native.respond_to?(:log)
        Native.log(number, 'ruby', text)
      else
        line = { ts: Time.now.utc.iso8601(3), level: LOG_LEVELS.key(number).to_s,
                 component: 'ruby', msg: text }
        $stderr.write("#{JSON.generate(line)}\n")
      end
    end
  end

  def self.logger
    @logger ||= WorkerLogger.new
  end
end
