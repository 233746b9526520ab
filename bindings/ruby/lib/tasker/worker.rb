# frozen_string_literal: true

# worker.rb - TaskerCore::Worker: a Ruby process as a tasker worker.
#
#   worker = TaskerCore::Worker.new(templates: 'config/templates', handlers_dir: 'app/handlers',
#                                   database_url: ENV['DATABASE_URL'])
#   worker.run            # start, serve until SIGINT/SIGTERM, stop
#
# libtasker (in C) loads and registers the templates, claims steps with a lease, renews
# leases, enforces timeouts and reports results; Ruby only runs handlers. The callables
# offered to the runtime are those of the templates' steps that resolve to a Ruby handler
# (registry.rb); builtin.* steps run in C in the same process; a callable that resolves to
# nothing is reported at start and left to other workers.
#
# Threads: `threads` Ruby threads (default worker.max_concurrent_handlers, 10) each wait for
# a step (without the GVL), run its handler and hand it back. A handler that overruns its
# timeout is reported as handler_timeout by the runtime at its deadline; like the C runtime,
# Ruby does not interrupt it (Thread#raise into arbitrary code is unsafe) but starts a
# replacement thread so the pool keeps its size, and the late thread's result is dropped.
module TaskerCore
  class Worker
    DEFAULT_THREADS = 10
    WATCH_INTERVAL = 0.2 # seconds between checks for overrunning handlers

    Slot = Struct.new(:thread, :deadline, :replaced)

    # port: where /health listens once started (the port chosen when worker.port is 0), nil
    # when health is false.
    attr_reader :id, :bind, :port, :host_handlers, :unresolved, :threads, :templates

    # templates: a template file or directory. handlers_dir: a directory (or an Array of
    # them); every *.rb below it is loaded (sorted) before resolving callables. database_url: else DATABASE_URL / the config.
    # threads: handler threads. settings: tasker configuration overrides ({"worker.id" =>
    # "w1"} or ["worker.id=w1"]). config_path: a tasker YAML configuration file. health:
    # serve /health and /metrics on worker.port (0 = a free port). stop_timeout: seconds
    # #stop waits for handler threads after the runtime stopped.
    def initialize(templates:, handlers_dir: nil, database_url: nil, threads: nil, settings: {},
                   config_path: nil, health: true, stop_timeout: 30, registry: nil)
      @templates = templates.to_s
      @handler_dirs = Array(handlers_dir).map(&:to_s)
      @database_url = database_url
      @settings = normalize_settings(settings)
      @config_path = config_path
      @health = health
      @stop_timeout = stop_timeout
      @registry = registry || Registry::HandlerRegistry.instance
      @threads = Integer(threads || setting('worker.max_concurrent_handlers',
                                            'TASKER_WORKER_MAX_CONCURRENT_HANDLERS') || DEFAULT_THREADS)
      raise ArgumentError, 'threads must be at least 1' if @threads < 1

      @slots = []
      @slots_lock = Mutex.new
      @native = nil
    end

    def running?
      !@native.nil?
    end

    # Load handlers, resolve callables, start the runtime and the handler threads.
    # Raises Errors::ConfigurationError or TaskerCore::Native::Error.
    def start
      raise Errors::ConfigurationError, 'the worker is already running' if running?

      Native.load!
      load_handlers
      resolve_handlers
      @bind = setting('worker.bind', 'TASKER_WORKER_BIND') || '0.0.0.0'
      @closing = false
      @native = Native::Worker.new(@config_path, native_settings, @host_handlers, nil, @health)
      @id = @native.id
      @port = @native.port
      @threads.times { spawn_handler_thread }
      @watchdog = Thread.new { watch }
      @watchdog.name = 'tasker-watchdog'
      TaskerCore.logger.info("ruby worker #{@id}: #{@host_handlers.length} Ruby handler" \
                             "#{@host_handlers.length == 1 ? '' : 's'}, #{@threads} thread#{@threads == 1 ? '' : 's'}")
      self
    end

    # Stop: no new claims; handlers already running get up to the handler timeout to finish
    # (the GVL is released meanwhile); steps claimed but not yet started fail as
    # worker_stopping (retryable). Then waits up to `timeout` seconds for the handler
    # threads to end.
    def stop(timeout: @stop_timeout)
      native = @native
      return unless native

      @closing = true
      native.close
      if @watchdog
        @watchdog.wakeup if @watchdog.alive?
        @watchdog.join
      end
      native.stop
      deadline = monotonic + timeout
      slots = @slots_lock.synchronize { @slots.dup }
      slots.each { |s| s.thread.join([deadline - monotonic, 0].max) }
      left = slots.count { |s| s.thread.alive? }
      if left.positive?
        TaskerCore.logger.warn("#{left} handler#{left == 1 ? '' : 's'} still running after the worker stopped; " \
                               'their steps run again elsewhere')
      end
      @native = nil
      @slots_lock.synchronize { @slots.clear }
      nil
    end

    # start, then serve until SIGINT or SIGTERM, then stop. Yields the started worker (e.g.
    # to print where it serves).
    def run
      signals = Queue.new
      previous = %w[INT TERM].to_h { |sig| [sig, Signal.trap(sig) { signals << sig }] }
      begin
        start
        yield self if block_given?
        sig = signals.pop
        TaskerCore.logger.info("ruby worker #{@id}: SIG#{sig} received, stopping")
      ensure
        stop
        previous.each { |sig, handler| Signal.trap(sig, handler || 'DEFAULT') }
      end
      self
    end

    private

    def normalize_settings(settings)
      list = settings.is_a?(Hash) ? settings.map { |k, v| "#{k}=#{v}" } : Array(settings).map(&:to_s)
      list.each do |s|
        raise ArgumentError, "setting \"#{s}\" is not key=value" unless s.match?(/\A[^=]+=/)
      end
      list
    end

    # The value of `key` from the settings, else the environment variable, else nil.
    def setting(key, env)
      found = @settings.reverse.find { |s| s.start_with?("#{key}=") }
      return found.split('=', 2)[1] if found

      value = ENV.fetch(env, '')
      value.empty? ? nil : value
    end

    def native_settings
      list = []
      list << "database.url=#{@database_url}" if @database_url && !@database_url.to_s.empty?
      list << "worker.templates=#{@templates}"
      list.concat(@settings)
    end

    def load_handlers
      @handler_dirs.each do |dir|
        raise Errors::ConfigurationError, "handler directory #{dir} does not exist" unless File.directory?(dir)

        Dir.glob(File.join(File.expand_path(dir), '**', '*.rb')).sort.each { |f| require f }
      end
    end

    def resolve_handlers
      steps = Templates.steps(@templates)
      resolved = {}
      @unresolved = []
      steps.map(&:callable).uniq.each do |callable|
        next if callable.start_with?('builtin.')

        handler = @registry.resolve(callable)
        if handler
          resolved[callable] = handler
        else
          @unresolved << callable
          where = steps.select { |s| s.callable == callable }.map { |s| "#{s.namespace}/#{s.task_name}:#{s.step_name}" }
          TaskerCore.logger.warn("handler \"#{callable}\" (steps #{where.join(', ')}) is neither a registered " \
                                 'handler nor a Ruby class with #call; this worker leaves those steps to others')
        end
      end
      methods = {}
      steps.each do |s|
        next if s.method.nil? || s.method.empty? || s.method == 'call' || !resolved.key?(s.callable)

        methods[[s.namespace, s.task_name, s.version, s.step_name]] = s.method
      end
      @host_handlers = resolved.keys
      @executor = Executor.new(resolved, methods)
    end

    def spawn_handler_thread
      slot = Slot.new(nil, nil, false)
      slot.thread = Thread.new { serve(slot) }
      slot.thread.name = 'tasker-handler'
      @slots_lock.synchronize { @slots << slot }
      slot
    end

    # One handler thread: take a step, run it, hand it back; until the worker closes (or the
    # watchdog replaced this thread while its handler overran).
    def serve(slot)
      native = @native
      executor = @executor
      loop do
        # run_next hands the step back even if this thread is killed during the handler
        taken = native.run_next(-1) do |step|
          slot.deadline = step.deadline_ms
          executor.run(step)
        ensure
          slot.deadline = nil
        end
        break if taken == false || slot.replaced
      end
    rescue Exception => e # rubocop:disable Lint/RescueException
      TaskerCore.logger.error("handler thread stopped: #{e.class}: #{e.message}")
      raise
    end

    # Watchdog: a thread whose handler is past its deadline is replaced (see the file's
    # comment); replaced threads that have finished are forgotten.
    def watch
      until @closing
        sleep WATCH_INTERVAL
        break if @closing

        now = Process.clock_gettime(Process::CLOCK_MONOTONIC, :millisecond)
        overran = @slots_lock.synchronize do
          @slots.reject! { |s| s.replaced && !s.thread.alive? }
          @slots.select { |s| !s.replaced && (d = s.deadline) && now >= d }
        end
        overran.each do |s|
          s.replaced = true
          TaskerCore.logger.info('a Ruby handler overran its timeout; started a replacement handler thread ' \
                                 '(the late one exits when its handler returns)')
          spawn_handler_thread
        end
      end
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
